"""``spotcheck demo``: the whole protocol on a local anvil chain, end to end.

Stages: compile the contracts, build (or load from the cache) the model's circuit and keys,
measure ``tau``, start anvil through Ape's foundry provider, deploy, register the model with
its real ezkl verifier, fund and stake (every open commitment fully backed), then run in this
process (one thread each): an honest node, a DISHONEST node (fault injection corrupts a share
of its outputs beyond ``tau``), a WITHHOLDING node (serves users, withholds its batch listings
from challengers and never reveals a requested leaf), a challenger sampling ``p`` of all
commitments, a block heartbeat, and a dApp that sends on-chain jobs through ``ExampleConsumer``
and batched jobs over the nodes' HTTP API. Optionally a
griefing challenger disputes one CORRECT output, so the honest node must answer with a real
zk proof verified on-chain (and the griefer loses its bond).

Paid checks (issue 15): the registry owner sets the model's check terms, the challenger's VRF
key is registered with a bond (it claims the on-chain jobs it sampled and found correct and
collects once final), a CANARY node commits wrong outputs on a known schedule (its operator
disputes, from a second address, every one nobody else disputed), and a LAZY claimant claims
whatever its key samples without re-running it. The report's paid-checks section shows what
each earned or lost.

The demo waits until every job is resolved and the cheater has been slashed, lets the dApp
read the final outputs (and only those), and prints a report built from the chain and the
services' own state. Exit status 1 if the honest node was ever slashed or a misbehaving node
was never caught before the timeout.

Windows are seconds long; when nothing is left to check until the next deadline, the demo
moves anvil's clock forward to it (``--no-time-travel`` waits in real time instead). Every
thread is stopped and anvil is shut down on exit, on failure and on Ctrl-C.

Modules, in the order a run uses them:

=================  ===========================================================================
``cli``            the click command, its options, SIGTERM handling
``config``         ``DemoConfig`` (the parameters) and the run folder's paths
``run``            the stages of one run, anvil's start and stop
``progress``       timed stage lines; services' logs and stdout to files
``prepare``        contracts compiled, example model built (``verifier.examples``), tau measured
``chain_setup``    deploy, register, fund and stake; events and holdings read back
``threads``        the kit's run loop (``spotcheck.kit.loop``) in a thread
``paid_checks``    check terms, registered keys, the canary and the lazy claimant
``actors``         the nodes, the challenger, the heartbeat, the canary and the lazy claimant
``workload``       the dApp's job stream: on-chain through ExampleConsumer, batched over HTTP
``grief``          the griefing dispute against a correct output
``challenger_db``  read-only queries of the challenger's database
``clock``          when anvil's clock may jump to the next deadline
``watch``          the run-until-caught loop
``dapp``           the dApp reads final outputs (and only those)
``gather``         the report's numbers, from the chain and the services' state
``paid_report``    the report's paid-checks section, from CheckPool events
``report``         the report's types, text and JSON
=================  ===========================================================================
"""

from demo.cli import demo

__all__ = ["demo"]
