"""The run loop: a routine, a model and tools become a trace.

* :mod:`.settings` — limits, prompt options and sampling in one record;
* :mod:`.tracking` — where a run stands in its routine (the current step, known values);
* :mod:`.memory` — the paper's variable memory for long results and named outputs;
* :mod:`.prompts` — the system and state prompts (templates in ``templates/``);
* :mod:`.turn` — one turn: ask, parse, act; every prompt a model sees comes from here;
* :mod:`.interaction` — the steps taken with the user: questions, confirmations, exact
  messages, hand-offs;
* :mod:`.executor` — :class:`Agent`, the short loop over turns;
* :mod:`.conversation` — :class:`Conversation`: a run over several user messages;
* :mod:`.trace` — the typed record of a run;
* :mod:`.signing` — signed traces: an edited conversation does not resume.
"""

from .conversation import Conversation, Reply
from .executor import Agent, coerce_inputs
from .prompts import Planner
from .settings import RunSettings
from .trace import RunTrace, ToolCallRecord, TurnRecord, dump_traces, load_traces

__all__ = ["Agent", "Conversation", "Reply", "Planner", "RunSettings", "RunTrace",
           "ToolCallRecord", "TurnRecord", "coerce_inputs", "dump_traces", "load_traces"]
