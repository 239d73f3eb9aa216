/** Every command of the CLI, in the order the help lists them. */
import type { Command } from '../command.js';
import { get } from './get.js';
import { set } from './set.js';
import { edit } from './edit.js';
import { watch } from './watch.js';

export const COMMANDS: readonly Command[] = [get, set, edit, watch];
