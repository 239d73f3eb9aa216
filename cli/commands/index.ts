/** Every command of the CLI, in the order the help lists them. */
import type { Command } from '../command.js';
import { doctor } from './doctor.js';
import { edit } from './edit.js';
import { get } from './get.js';
import { history } from './history.js';
import { locks, elections } from './locks.js';
import { ls } from './ls.js';
import { listeners, members } from './members.js';
import { queue } from './queue.js';
import { set } from './set.js';
import { watch } from './watch.js';

export const COMMANDS: readonly Command[] = [get, set, edit, watch, ls, listeners, members, locks, elections, history, queue, doctor];
