"""The ``policy`` plugin: ``[[policies]]``, their election, and claims that tighten them.

- :mod:`.settings`: the ``[policy_election]`` and ``[catalog]`` sections;
- :mod:`.catalog`: key ids to track types, from config or a file;
- :mod:`.election`: which policies match a request, and which one wins;
- :mod:`.claims`: Verimatrix- and Axinom-style claims that carry policy, read
  and applied (tightening only) for trusted issuers;
- :mod:`.lint`: ``check-config`` warnings about policies that can never be elected;
- :mod:`.plugin`: the hook implementations.
"""

from plugins.policy.election import claim_matches, policy_matches
from plugins.policy.plugin import PolicyPlugin

__all__ = ["PolicyPlugin", "claim_matches", "policy_matches"]
