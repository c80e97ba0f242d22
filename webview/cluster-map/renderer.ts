// The map's WebGL2 program: every point a GL point, placed by the view's centre and scale, coloured per point,
// round once points are big enough to show it.

const vertexSource = `#version 300 es
in vec2 position;
in vec4 colour;
uniform vec2 centre;
uniform vec2 scale;
uniform float pointSize;
out vec4 pointColour;
void main() {
  gl_Position = vec4((position - centre) * scale, 0.0, 1.0);
  gl_PointSize = pointSize;
  pointColour = colour;
}`;
const fragmentSource = `#version 300 es
precision mediump float;
in vec4 pointColour;
uniform float round;
out vec4 fragment;
void main() {
  if (round > 0.5 && length(gl_PointCoord - vec2(0.5)) > 0.5) discard;
  fragment = pointColour;
}`;

export interface Renderer {
  program: WebGLProgram;
  positionBuffer: WebGLBuffer;
  colourBuffer: WebGLBuffer;
  vertexArray: WebGLVertexArrayObject;
  uniforms: Record<'centre' | 'scale' | 'pointSize' | 'round', WebGLUniformLocation>;
}

function compile(context: WebGL2RenderingContext, type: number, source: string): WebGLShader {
  const shader = context.createShader(type)!;
  context.shaderSource(shader, source);
  context.compileShader(shader);
  if (!context.getShaderParameter(shader, context.COMPILE_STATUS)) throw new Error(context.getShaderInfoLog(shader) ?? 'shader did not compile');
  return shader;
}

export function createRenderer(context: WebGL2RenderingContext): Renderer {
  const program = context.createProgram()!;
  context.attachShader(program, compile(context, context.VERTEX_SHADER, vertexSource));
  context.attachShader(program, compile(context, context.FRAGMENT_SHADER, fragmentSource));
  context.linkProgram(program);
  if (!context.getProgramParameter(program, context.LINK_STATUS)) throw new Error(context.getProgramInfoLog(program) ?? 'program did not link');
  const vertexArray = context.createVertexArray()!;
  context.bindVertexArray(vertexArray);
  const positionBuffer = context.createBuffer()!;
  context.bindBuffer(context.ARRAY_BUFFER, positionBuffer);
  const position = context.getAttribLocation(program, 'position');
  context.enableVertexAttribArray(position);
  context.vertexAttribPointer(position, 2, context.FLOAT, false, 0, 0);
  const colourBuffer = context.createBuffer()!;
  context.bindBuffer(context.ARRAY_BUFFER, colourBuffer);
  const colour = context.getAttribLocation(program, 'colour');
  context.enableVertexAttribArray(colour);
  context.vertexAttribPointer(colour, 4, context.UNSIGNED_BYTE, true, 0, 0);
  const uniform = (name: string) => context.getUniformLocation(program, name)!;
  return { program, positionBuffer, colourBuffer, vertexArray, uniforms: { centre: uniform('centre'), scale: uniform('scale'), pointSize: uniform('pointSize'), round: uniform('round') } };
}
