#!/usr/bin/env node
// The installed command: runs the compiled CLI (npm ci builds dist/ through the prepare script).
import '../dist/cli/main.js'
