// jest runs each test file in its own realm, whose typed-array classes differ from Node's main realm.
// onnxruntime-node creates output tensors from main-realm typed arrays and onnxruntime-common checks
// them with instanceof, so inference inside a test realm fails. Give the test realm the main realm's
// typed-array classes (the same objects the native binding uses).
const { TestEnvironment } = require('jest-environment-node');

const TYPED_ARRAYS = ['Float32Array', 'Float64Array', 'Int8Array', 'Uint8Array', 'Uint8ClampedArray', 'Int16Array', 'Uint16Array', 'Int32Array', 'Uint32Array', 'BigInt64Array', 'BigUint64Array'];

class MainRealmTypedArraysEnvironment extends TestEnvironment {
  constructor(config, context) {
    super(config, context);
    for (const name of TYPED_ARRAYS) this.global[name] = globalThis[name];
  }
}

module.exports = MainRealmTypedArraysEnvironment;
