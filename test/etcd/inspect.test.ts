/** The inspection contract on etcd; compaction through a raw etcd3 client. */
import { inspectContract } from '../contract/inspect.suite.js';
import { rawEtcd, sharedEtcd } from '../support/etcd.js';
import { etcdTarget } from './target.js';

inspectContract(etcdTarget, {
  history: true,
  async compact() {
    const raw = rawEtcd((await sharedEtcd()).endpoints);
    try {
      const { header } = await raw.kv.range({ key: Buffer.from('/') });
      await raw.kv.compact({ revision: header.revision, physical: true });
    } finally {
      raw.close();
    }
  },
});
