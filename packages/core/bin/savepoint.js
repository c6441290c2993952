#!/usr/bin/env node
// The installed command: a fixed file (so npm can link it before the package is built) that runs
// the built CLI.
import "../dist/cli.js";
