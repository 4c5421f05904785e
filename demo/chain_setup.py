"""The demo's chain: deploy the contracts, register the model with its ezkl verifier, fund
and stake the actors; then read it back (events since the deployment, holdings)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from demo.config import DemoConfig
from demo.prepare import PreparedModel
from demo.progress import Progress
from demo.report import Holdings, tokens
from spotcheck.chain import TOKEN
from spotcheck.economics import DEFAULTS

#: Stake above what the run's open commitments reserve (disputes and leaf requests keep a
#: commitment reserved longer; a node short of free stake cannot commit).
STAKE_HEADROOM = 1.25


def node_stake(cfg: DemoConfig, slash_amount: int) -> int:
    """What each node stakes: every open commitment is fully backed (a batch of ``n`` jobs
    reserves ``n`` slashes), and in the demo every job of the run may be open at once."""
    need = cfg.open_jobs_per_node * slash_amount
    step = 100 * TOKEN
    return -(-int(need * STAKE_HEADROOM) // step) * step


@dataclass(frozen=True)
class Accounts:
    """Who is who: anvil's test accounts 0 to 9."""

    deployer: Any
    honest: Any
    cheater: Any
    challenger: Any
    dapp: Any
    griefer: Any
    withholder: Any
    canary: Any  # the canary node (paid checks)
    operator: Any  # the canary operator's second address: requests, disputes, forfeits
    lazy: Any  # the lazy claimant

    @classmethod
    def from_test_accounts(cls) -> Accounts:
        from ape import accounts

        acct = accounts.test_accounts
        return cls(*(acct[i] for i in range(10)))

    def nodes(self, cfg: DemoConfig) -> list[Any]:
        """The node accounts of this run."""
        return [self.honest, self.cheater] + ([self.withholder] if cfg.withholding else [])


@dataclass(frozen=True)
class DemoChain:
    """The deployed protocol with the registered model."""

    accounts: Accounts
    deployment: Any  # spotcheck.chain.Deployment
    contracts: Any  # spotcheck.chain.SpotcheckContracts
    model_id: bytes
    verifier: str
    model_params: Any  # verifier.registry.ModelParams
    fee: int  # per on-chain job
    stake: int  # each node's stake

    def events(self, contract: Any, name: str, **topics: Any) -> list[Any]:
        """Every ``name`` event of ``contract`` since the deployment (optionally filtered)."""
        from ape import chain

        event = getattr(contract, name)
        head = int(chain.blocks.height)
        start = self.deployment.deploy_block
        if topics:
            return list(event.range(start, head + 1, search_topics=topics))
        return list(event.range(start, head + 1))

    def open_disputes(self) -> list[Any]:
        """The ``DisputeOpened`` events of the disputes still open."""
        from spotcheck.chain import DisputeStatus

        dm = self.contracts.dispute_manager
        return [
            ev
            for ev in self.events(dm, "DisputeOpened")
            if int(dm.getDispute(ev.event_arguments["disputeId"]).status) == DisputeStatus.OPEN
        ]

    def open_leaf_requests(self) -> list[Any]:
        """The ``LeafRequested`` events of the leaf requests still open (not revealed, not
        settled)."""
        from spotcheck.chain import LeafRequestStatus

        dm = self.contracts.dispute_manager
        return [
            ev
            for ev in self.events(dm, "LeafRequested")
            if int(dm.getLeafRequest(ev.event_arguments["requestId"]).status)
            == LeafRequestStatus.OPEN
        ]

    def holdings(self, address: str) -> Holdings:
        c = self.contracts
        return Holdings(
            wallet=int(c.token.balanceOf(address)),
            stake=int(c.stake_manager.stakeOf(address).amount),
            credits=int(c.job_manager.credits(address)) + int(c.dispute_manager.credits(address)),
        )


def setup_chain(cfg: DemoConfig, model: PreparedModel, progress: Progress) -> DemoChain:
    from spotcheck.chain import DeployParams, SpotcheckContracts
    from spotcheck.deploy import deploy_all
    from verifier import registry

    who = Accounts.from_test_accounts()
    with progress.stage("deploy contracts"):
        # The dApp owns its ExampleConsumer: only the owner may spend its fee budget.
        params = DeployParams(
            min_stake=1000 * TOKEN,
            unbonding_delay=3600,
            commit_timeout=120,
            example_consumer_owner=str(who.dapp.address),
        )
        deployment = deploy_all(who.deployer, params)
        contracts = SpotcheckContracts(deployment)
        contracts.example_consumer.acceptOwnership(sender=who.dapp)
        progress.say(
            f"    JobManager {deployment.job_manager}, DisputeManager {deployment.dispute_manager}"
            f"; ExampleConsumer owned by the dApp ({who.dapp.address})"
        )
    with progress.stage("register model with its ezkl verifier"):
        mp = registry.model_params(
            model.artifacts,
            model.tau,
            challenge_window=cfg.challenge_window,
            proof_window=cfg.proof_window,
        )
        reg = registry.register_model(model.artifacts, mp, contracts, who.deployer)
        progress.say(f"    model 0x{reg.model_id.hex()}  verifier {reg.verifier}  tau {model.tau}")
    with progress.stage("fund and stake"):
        stake = node_stake(cfg, int(mp.slash_amount))
        fee = _fund(cfg, who, contracts, reg.model_id, stake, int(mp.slash_amount), progress)
    return DemoChain(who, deployment, contracts, reg.model_id, reg.verifier, mp, fee, stake)


def _fund(
    cfg: DemoConfig,
    who: Accounts,
    contracts: Any,
    model_id: bytes,
    stake: int,
    slash: int,
    progress: Progress,
) -> int:
    """Stake the nodes, give the challengers tokens, fund ExampleConsumer; the fee per job."""
    token, sm, dm = contracts.token, contracts.stake_manager, contracts.dispute_manager
    jm = contracts.job_manager
    d = who.deployer
    nodes = who.nodes(cfg)
    for node in nodes:
        token.mint(node, stake + 1000 * TOKEN, sender=d)
        token.approve(sm, stake, sender=node)
        sm.stake(stake, sender=node)
    token.mint(who.challenger, 1000 * TOKEN, sender=d)
    token.mint(who.griefer, 100 * TOKEN, sender=d)
    token.approve(dm, 2**256 - 1, sender=who.griefer)
    # The fee a request must carry: at least every node's price (the model's minFee unless the
    # node posted more).
    fee = max([int(DEFAULTS.reward * TOKEN)] + [int(jm.priceOf(n, model_id)) for n in nodes])
    total_fees = fee * 2 * cfg.onchain_jobs
    token.mint(who.dapp, total_fees, sender=d)
    token.transfer(contracts.example_consumer, total_fees, sender=who.dapp)
    progress.say(
        f"    nodes stake {tokens(stake)} each: {cfg.open_jobs_per_node} jobs may be open at "
        f"once, each reserving the slash {tokens(slash)} (every open commitment fully backed), "
        f"x{STAKE_HEADROOM:g} headroom"
    )
    progress.say(
        f"    challenger holds 1,000; ExampleConsumer funded with {tokens(total_fees)} for fees "
        f"({tokens(fee)} per job)"
    )
    return fee
