'use strict'
// The client commands bundled for a fast start (bin/bundle.js), which bin/tsnfs.cjs runs from the
// bundle: the ones that only talk to a server. cli/dispatch.ts names each one's module './NAME.js'.
exports.BUNDLED = ['cp', 'ls', 'cat', 'stat', 'mkdir', 'rm', 'mv', 'ln', 'df', 'showmount']
