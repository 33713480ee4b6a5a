"""Transaction simulation (`POST /api/simulate`): what a batch asks, what a simulator answers, and the offline demo.

An App names its simulator in its config (`simulator`: `demo`, or an import path `package.module:name` to a
function `(SimulationRequest) -> Simulation`, sync or async), as it names tools. A real one forks the chain (anvil,
Tenderly) and runs the batch there; the demo computes the same answer from the input alone, offline.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from functools import cache
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from .errors import InvalidInput
from .imports import import_named

ADDRESS = r"^0x[0-9a-fA-F]{40}$"
HEX_DATA = r"^0x([0-9a-fA-F]{2})*$"
WEI = r"^[0-9]{1,78}$"  # a uint256 in decimal
MAX_TRANSACTIONS = 32
MAX_DATA_CHARS = 2 + 2 * 128 * 1024  # 128 KiB of calldata
ZERO_ADDRESS = "0x" + "0" * 40


class Transaction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    to: Annotated[str, Field(pattern=ADDRESS)]
    value: Annotated[str, Field(pattern=WEI, description="Wei, in decimal.")] = "0"
    data: Annotated[str, Field(pattern=HEX_DATA, max_length=MAX_DATA_CHARS)] = "0x"
    label: Annotated[str | None, Field(max_length=200)] = None
    chain_id: Annotated[int | None, Field(ge=1, le=2**53)] = None


class SimulationRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    transactions: Annotated[list[Transaction], Field(min_length=1, max_length=MAX_TRANSACTIONS)]
    sender: Annotated[str | None, Field(alias="from", pattern=ADDRESS)] = None
    chain_id: Annotated[int | None, Field(ge=1, le=2**53)] = None


class Fee(BaseModel):
    recipient: str
    amount_wei: str
    token: str


class Step(BaseModel):
    model_config = ConfigDict(extra="allow")  # a simulator may say more of each step

    index: int
    label: str | None = None
    to: str
    value: str
    success: bool
    gas_used: int | None = None
    error: str | None = None


class Simulation(BaseModel):
    """What `POST /api/simulate` answers under `result`."""

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    batch_success: bool
    stateful: bool = Field(description="Whether each step ran on the state the steps before it left.")
    sender: str = Field(alias="from")
    network: str
    total_gas: int | None = None
    fee: Fee | None = None
    steps: list[Step]


Simulator = Callable[[SimulationRequest], Simulation | Awaitable[Simulation]]

NETWORKS = {1: "ethereum", 10: "optimism", 137: "polygon", 8453: "base", 42161: "arbitrum", 11155111: "sepolia"}
DEMO_CHAIN_ID = 1
DEMO_FEE_RECIPIENT = "0x" + "fee0" * 10
DEMO_FEE_WEI = 10**13  # a flat 0.00001 ETH a batch
BASE_GAS = 21_000


def _calldata_gas(data: str) -> int:
    raw = bytes.fromhex(data[2:])
    return sum(4 if b == 0 else 16 for b in raw)


def demo_simulator(request: SimulationRequest) -> Simulation:
    """Deterministic and offline: intrinsic gas for each step, and a transfer to the zero address reverts (with
    every step after it in the batch, as on a fork)."""
    steps: list[Step] = []
    failed = False
    for index, tx in enumerate(request.transactions):
        step: dict[str, Any] = {"index": index, "label": tx.label, "to": tx.to, "value": tx.value}
        if failed:
            steps.append(Step(**step, success=False, error="not run: an earlier step reverted"))
            continue
        failed = tx.to == ZERO_ADDRESS
        error = "reverted: transfer to the zero address" if failed else None
        steps.append(Step(**step, success=not failed, gas_used=BASE_GAS + _calldata_gas(tx.data), error=error))
    chain = request.chain_id or next((t.chain_id for t in request.transactions if t.chain_id), DEMO_CHAIN_ID)
    return Simulation(
        batch_success=not failed,
        stateful=True,
        sender=request.sender or ZERO_ADDRESS,
        network=NETWORKS.get(chain, f"chain-{chain}"),
        total_gas=sum(s.gas_used or 0 for s in steps),
        fee=Fee(recipient=DEMO_FEE_RECIPIENT, amount_wei=str(DEMO_FEE_WEI), token="ETH") if not failed else None,
        steps=steps,
    )


BUILT_IN: dict[str, Simulator] = {"demo": demo_simulator}


@cache
def resolve_simulator(path: str) -> Simulator:
    """The simulator an App names: built in by name, else imported once per process (`package.module:name`)."""
    if path in BUILT_IN:
        return BUILT_IN[path]
    found = import_named(path, "simulator")
    if not callable(found):
        raise InvalidInput(f"{path!r} is a {type(found).__name__}, not a function.")
    simulator: Simulator = found
    return simulator


async def simulate(path: str, request: SimulationRequest) -> Simulation:
    """Run the simulator `path` names on `request`; a sync one in a thread (it may call a node)."""
    simulator = resolve_simulator(path)
    if inspect.iscoroutinefunction(simulator):
        answer: Any = await simulator(request)
    else:
        answer = await asyncio.to_thread(simulator, request)
    return answer if isinstance(answer, Simulation) else Simulation.model_validate(answer)
