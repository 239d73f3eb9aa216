import type { ContractTarget } from './target.js';
export function regressionsContract(_target: ContractTarget): void {}
