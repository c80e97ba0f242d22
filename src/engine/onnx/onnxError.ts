import type { ErrorCode } from '../../protocol/engine';
import { EngineError } from '../errors';

/**
 * What kind of trouble an ONNX file is in; the `code` the user sees follows from it in one place.
 * `refused`: a file the engine will not read at all, or not all of: not a regular file (a FIFO, a device, a
 * folder), over the size cap, a run's copy that is a link or does not match the hash its checkpoint records, or a
 * model whose weights point at files outside its own folder.
 */
export type OnnxProblem = 'unreadable' | 'corrupt' | 'unsupported' | 'refused';

const codeOf: Record<OnnxProblem, ErrorCode> = {
  unreadable: 'NOT_FOUND',
  corrupt: 'BAD_MODEL',
  unsupported: 'UNSUPPORTED_MODEL',
  refused: 'BAD_MODEL',
};

/**
 * An ONNX model that cannot be used: names the file, and the operator and node, or the tensor, where one is to
 * blame.
 */
export class OnnxModelError extends EngineError {
  constructor(
    readonly problem: OnnxProblem,
    readonly file: string,
    message: string,
    readonly where: { operator?: string; node?: string; tensor?: string } = {},
    detail?: string,
  ) {
    super(codeOf[problem], message, detail);
    this.name = 'OnnxModelError';
  }
}

/** "node 'x' (Conv)", or "a Conv node" when the exporter left the name empty. */
export function describeNode(node: { name: string; opType: string }): string {
  return node.name ? `node '${node.name}' (${node.opType})` : `a ${node.opType} node`;
}
