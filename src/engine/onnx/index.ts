// ONNX interop: export a trained run, import a backbone (onnxruntime for speed, tfjs for gradients),
// and train the SwAV head on a frozen backbone's features.
export { exportOnnx, buildOnnxModel, appendHeadToBackbone, onnxDocumentation, exportOpset, type ExportOnnxResult, type WeightMap } from './export';
export { readOnnxFile, parseOnnx, imageInput, type OnnxGraph, type OnnxNode, type OnnxConstant } from './graph';
export { OnnxModelError, type OnnxProblem } from './onnxError';
export { resolveBackboneInput, type BackboneOptions, type BackboneInput } from './backboneInput';
export { OrtBackbone, OrtModel, loadOrt, type OrtOptions } from './ortBackbone';
export { convertToTfjs, supportedOperators, type TfjsBackbone } from './tfjsBackbone';
export { trainHeadOnFeatures, createHeadModel, embedFeatures, type HeadTrainOptions, type HeadTrainingStart, type CropFeatureSource, type HeadTrainingOutcome } from './headTrainer';
export { liveCropSource, computeFeatureBank, bankCropSource, imageSetFeatures, type FeatureBank } from './cropFeatures';
export { onnxExplainable, lastFeatureMapName } from './explainable';
