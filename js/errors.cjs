'use strict';

// ForkError: every error fork-router produces, with a `code` a program can
// switch on. The class lives on globalThis so that a second copy of this
// module (a dev server reloading its modules) still makes errors that pass
// `instanceof ForkError` in the first.

const codes = Object.freeze({
  INVALID_PAYLOAD: 'FORK_INVALID_PAYLOAD',
  UNKNOWN_DESTINATION: 'FORK_UNKNOWN_DESTINATION',
  TIMEOUT: 'FORK_TIMEOUT',
  UNAVAILABLE: 'FORK_UNAVAILABLE',
  BACKPRESSURE: 'FORK_BACKPRESSURE',
  TOO_LARGE: 'FORK_TOO_LARGE',
  REJECTED: 'FORK_REJECTED',
  CLOSED: 'FORK_CLOSED',
});

const CLASS_KEY = Symbol.for('fork-router.ForkError');

function defineForkError() {
  class ForkError extends Error {
    /**
     * @param {string} code one of `codes`
     * @param {string} message what was wrong and where
     * @param {object} [fields] extra fields copied onto the error (path,
     *   option, destination, id); `cause` becomes the standard error cause
     */
    constructor(code, message, fields) {
      super(message, fields !== undefined && fields.cause !== undefined ? { cause: fields.cause } : undefined);
      this.code = code;
      if (fields !== undefined) {
        for (const key of Object.keys(fields)) {
          if (key !== 'cause') this[key] = fields[key];
        }
      }
    }
  }
  Object.defineProperty(ForkError.prototype, 'name', {
    value: 'ForkError',
    writable: true,
    configurable: true,
  });
  return ForkError;
}

const ForkError = globalThis[CLASS_KEY] || (globalThis[CLASS_KEY] = defineForkError());

module.exports = { ForkError, codes };
