/** The fault-injection TCP proxy: it lives in `testing/` (`sharedstruct/testing`); the suites import it from here. */
export { startTcpProxy, type ProxyDelay, type ProxyMode, type TcpProxy } from '../../testing/tcp-proxy.js';
