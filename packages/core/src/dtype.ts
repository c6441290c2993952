import { UnsupportedFormatError } from "./errors.js";

/**
 * Element types savepoint stores. Names follow PyTorch (`torch.float32` is `"float32"`), since
 * the files are PyTorch's; tfjs dtypes map onto them in the CPU backend.
 */
export type DType =
  | "float64"
  | "float32"
  | "float16"
  | "bfloat16"
  | "float8_e4m3fn"
  | "float8_e5m2"
  | "int64"
  | "int32"
  | "int16"
  | "int8"
  | "uint64"
  | "uint32"
  | "uint16"
  | "uint8"
  | "bool"
  | "complex64"
  | "complex128";

interface DTypeInfo {
  /** Bytes per element. */
  readonly itemSize: number;
  /** torch storage class name (`torch.<name>`), when torch has one. */
  readonly torchStorage?: string;
  /** torch dtype attribute name (`torch.<name>`). */
  readonly torchName: string;
  /** safetensors dtype code. */
  readonly safetensors: string;
}

const TABLE: Record<DType, DTypeInfo> = {
  float64: { itemSize: 8, torchStorage: "DoubleStorage", torchName: "float64", safetensors: "F64" },
  float32: { itemSize: 4, torchStorage: "FloatStorage", torchName: "float32", safetensors: "F32" },
  float16: { itemSize: 2, torchStorage: "HalfStorage", torchName: "float16", safetensors: "F16" },
  bfloat16: { itemSize: 2, torchStorage: "BFloat16Storage", torchName: "bfloat16", safetensors: "BF16" },
  float8_e4m3fn: { itemSize: 1, torchName: "float8_e4m3fn", safetensors: "F8_E4M3" },
  float8_e5m2: { itemSize: 1, torchName: "float8_e5m2", safetensors: "F8_E5M2" },
  int64: { itemSize: 8, torchStorage: "LongStorage", torchName: "int64", safetensors: "I64" },
  int32: { itemSize: 4, torchStorage: "IntStorage", torchName: "int32", safetensors: "I32" },
  int16: { itemSize: 2, torchStorage: "ShortStorage", torchName: "int16", safetensors: "I16" },
  int8: { itemSize: 1, torchStorage: "CharStorage", torchName: "int8", safetensors: "I8" },
  uint64: { itemSize: 8, torchName: "uint64", safetensors: "U64" },
  uint32: { itemSize: 4, torchName: "uint32", safetensors: "U32" },
  uint16: { itemSize: 2, torchName: "uint16", safetensors: "U16" },
  uint8: { itemSize: 1, torchStorage: "ByteStorage", torchName: "uint8", safetensors: "U8" },
  bool: { itemSize: 1, torchStorage: "BoolStorage", torchName: "bool", safetensors: "BOOL" },
  complex64: { itemSize: 8, torchStorage: "ComplexFloatStorage", torchName: "complex64", safetensors: "C64" },
  complex128: { itemSize: 16, torchStorage: "ComplexDoubleStorage", torchName: "complex128", safetensors: "C128" },
};

/** Every dtype savepoint knows, in a stable order. */
export const DTYPES = Object.keys(TABLE) as DType[];

/** True when `name` is a dtype savepoint knows. */
export function isDType(name: unknown): name is DType {
  return typeof name === "string" && Object.prototype.hasOwnProperty.call(TABLE, name);
}

/** Bytes per element of `dtype`. */
export function itemSize(dtype: DType): number {
  return TABLE[dtype].itemSize;
}

/** torch storage class (e.g. `FloatStorage`) of a dtype, or undefined where torch has none. */
export function torchStorageClass(dtype: DType): string | undefined {
  return TABLE[dtype].torchStorage;
}

/** torch dtype attribute name, e.g. `float32` for `torch.float32`. */
export function torchDTypeName(dtype: DType): string {
  return TABLE[dtype].torchName;
}

const BY_STORAGE = new Map(DTYPES.filter((d) => TABLE[d].torchStorage).map((d) => [TABLE[d].torchStorage!, d]));
const BY_TORCH_NAME = new Map<string, DType>([
  ...DTYPES.map((d) => [TABLE[d].torchName, d] as [string, DType]),
  ["float", "float32"],
  ["double", "float64"],
  ["half", "float16"],
  ["long", "int64"],
  ["int", "int32"],
  ["short", "int16"],
  ["cfloat", "complex64"],
  ["cdouble", "complex128"],
]);
const BY_SAFETENSORS = new Map(DTYPES.map((d) => [TABLE[d].safetensors, d]));

/** dtype of a torch storage class name such as `FloatStorage`. */
export function dtypeFromTorchStorage(name: string, where: string): DType {
  const d = BY_STORAGE.get(name);
  if (!d) throw new UnsupportedFormatError(`unknown torch storage type torch.${name} in ${where}; savepoint reads ${[...BY_STORAGE.keys()].join(", ")}.`, { subject: where });
  return d;
}

/** dtype of a torch dtype attribute such as `float32` (from `torch.float32`). */
export function dtypeFromTorchName(name: string, where: string): DType {
  const d = BY_TORCH_NAME.get(name);
  if (!d) throw new UnsupportedFormatError(`unknown torch dtype torch.${name} in ${where}.`, { subject: where });
  return d;
}

/** safetensors dtype code (e.g. `F32`) of a dtype. */
export function safetensorsCode(dtype: DType): string {
  return TABLE[dtype].safetensors;
}

/** dtype of a safetensors code, or an UnsupportedFormatError naming the tensor. */
export function dtypeFromSafetensors(code: string, where: string): DType {
  const d = BY_SAFETENSORS.get(code);
  if (!d) throw new UnsupportedFormatError(`unknown safetensors dtype ${JSON.stringify(code)} for ${where}; supported: ${[...BY_SAFETENSORS.keys()].join(", ")}.`, { subject: where });
  return d;
}
