/** `npm run test:containers`: example 05 (a user's node:test file) with runtime 'container'. */
import { assertTestExamplePassed, runTestExample } from '../package/example05.js';

describe('package: example 05 in containers', function () {
  this.timeout(150_000);
  it("05 with SHAREDSTRUCT_RUNTIME=container: passes on memory and on a 3-member etcd in containers whose leader it kills", async function () {
    assertTestExamplePassed(await runTestExample('container'));
  });
});
