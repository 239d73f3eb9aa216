/** Every command of the CLI, in the order the help lists them. */
import type { Command } from '../command.js';
import { get } from './get.js';
import { set } from './set.js';

export const COMMANDS: readonly Command[] = [get, set];
