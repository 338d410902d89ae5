"""SecantusDB with a replica-set name of our choice, for the sharded test bed.

    lm_secantusd.py --set-name NAME [secantusd-py options...]

secantusd-py always advertises the set name `secantus` (its CLI has no option for it), while
a sharded cluster needs one set name per shard (`shard0`, `src-shard0`, ...) and `csrs` for
the config server. This runs SecantusDB's own CLI unchanged, except that the server object
it builds gets NAME as its replica-set name.
"""

import sys

import secantus.cli as cli


def main():
    argv = sys.argv[1:]
    if len(argv) < 2 or argv[0] != "--set-name" or not argv[1]:
        print("usage: lm_secantusd.py --set-name NAME [secantusd-py options...]", file=sys.stderr)
        return 2
    name, rest = argv[1], argv[2:]
    server_class = cli.SecantusDBServer

    def named_server(**kw):
        if kw.get("replica_set_name") is not None:
            kw["replica_set_name"] = name
        return server_class(**kw)

    cli.SecantusDBServer = named_server
    return cli.main(rest)


if __name__ == "__main__":
    sys.exit(main())
