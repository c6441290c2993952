/** Record layouts of the zip format (APPNOTE.TXT) that both the reader and the writer need. */

export const SIG_LOCAL = 0x04034b50;
export const SIG_CENTRAL = 0x02014b50;
export const SIG_DESCRIPTOR = 0x08074b50;
export const SIG_EOCD = 0x06054b50;
export const SIG_ZIP64_EOCD = 0x06064b50;
export const SIG_ZIP64_LOCATOR = 0x07064b50;

/** Fixed parts of each record, before variable-length name/extra/comment. */
export const LOCAL_HEADER_SIZE = 30;
export const CENTRAL_HEADER_SIZE = 46;
export const EOCD_SIZE = 22;
export const ZIP64_EOCD_SIZE = 56;
export const ZIP64_LOCATOR_SIZE = 20;

/** A 32-bit size/offset field holding this means "see the zip64 extra field". */
export const MAX_U32 = 0xffffffff;
/** A 16-bit count/disk field holding this means "see the zip64 end record". */
export const MAX_U16 = 0xffff;

export const EXTRA_ZIP64 = 0x0001;
/** torch's alignment padding extra field: 'F','B' little-endian. */
export const EXTRA_TORCH_PADDING = 0x4246;

export const FLAG_ENCRYPTED = 0x0001;
export const FLAG_STRONG_ENCRYPTION = 0x0040;
export const FLAG_DATA_DESCRIPTOR = 0x0008;
export const FLAG_UTF8 = 0x0800;

export const METHOD_STORED = 0;

export const VERSION_DEFAULT = 20;
export const VERSION_ZIP64 = 45;

/** DOS date 1980-01-01 (the epoch of the format): fixed so identical inputs give identical files. */
export const DOS_DATE_EPOCH = (0 << 9) | (1 << 5) | 1;
export const DOS_TIME_MIDNIGHT = 0;
