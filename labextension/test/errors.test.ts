// Unit tests of error responses.
import { strict as assert } from 'node:assert';
import { describe, it } from 'node:test';

import { errorField, errorMessage } from '../src/errors';

describe('errors', () => {
  it("prefers the server's message, then its reason, then the body", () => {
    const body = '{"message": "memory must be at least 32M", "reason": "Bad Request", "field": "memory"}';
    assert.equal(errorMessage(400, body), 'memory must be at least 32M');
    assert.equal(errorMessage(404, '{"reason": "Not Found"}'), 'Not Found');
    assert.equal(errorMessage(502, 'Bad gateway'), 'Bad gateway (HTTP 502)');
    assert.equal(errorMessage(500, ''), 'HTTP 500');
  });

  it('reads the field an error names', () => {
    assert.equal(errorField('{"message": "m", "field": "memory"}'), 'memory');
    assert.equal(errorField('{"message": "m"}'), null);
    assert.equal(errorField('<html>'), null);
  });
});
