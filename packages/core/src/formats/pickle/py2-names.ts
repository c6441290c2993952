/**
 * Python 2 names of modules and built-ins, mapped to their Python 3 names the way Python 3's
 * unpickler does (`_compat_pickle`), so allow-list lookups see one spelling. Only the names data
 * pickles use are listed.
 */
const MODULES: Record<string, string> = {
  __builtin__: "builtins",
  copy_reg: "copyreg",
  exceptions: "builtins",
  cPickle: "pickle",
  UserDict: "collections",
  UserList: "collections",
  UserString: "collections",
  // Python 3 itself writes these names under protocols 0-2 (e.g. subprocess.Popen as commands.Popen).
  commands: "subprocess",
  Queue: "queue",
  repr: "reprlib",
  thread: "_thread",
  StringIO: "io",
  cStringIO: "io",
  _abcoll: "collections.abc",
  ConfigParser: "configparser",
  urlparse: "urllib.parse",
  urllib2: "urllib.request",
  httplib: "http.client",
};

const NAMES: Record<string, [string, string]> = {
  "__builtin__.unicode": ["builtins", "str"],
  "__builtin__.basestring": ["builtins", "str"],
  "__builtin__.long": ["builtins", "int"],
  "__builtin__.xrange": ["builtins", "range"],
  "__builtin__.unichr": ["builtins", "chr"],
  "__builtin__.reduce": ["functools", "reduce"],
  "__builtin__.intern": ["sys", "intern"],
  "UserDict.IterableUserDict": ["collections", "UserDict"],
};

/** The Python 3 `[module, name]` of a global as written in a pickle. */
export function python3Name(module: string, name: string): [string, string] {
  const renamed = Object.hasOwn(NAMES, `${module}.${name}`) ? NAMES[`${module}.${name}`] : undefined;
  if (renamed) return renamed;
  return [Object.hasOwn(MODULES, module) ? (MODULES[module] as string) : module, name];
}
