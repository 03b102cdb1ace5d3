/* commands.h: how subcommands register themselves.
 *
 * A command is defined in src/cli/cmd_<name>.c with a line that starts with
 *     IT_COMMAND(name, "one-line summary")
 * followed by the function body taking (int argc, char **argv), where argv[0]
 * is the command name. The build greps these lines into build/gen/commands.inc,
 * so adding a command touches no shared file. Summaries must not contain ')'. */
#ifndef IT_COMMANDS_H
#define IT_COMMANDS_H

#define IT_COMMAND(name, summary) int it_cmd_##name(int argc, char **argv)

#endif
