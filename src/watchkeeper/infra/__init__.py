"""Infrastructure: the platforms the document names, and the providers that speak to them.

`providers` holds what a provider is (`providers.base`) and the built-in ones; the
providers are the plugins of `watchkeeper.plugins.PROVIDERS`, run by the workers of a
platform's zone, where its credentials are.
"""

from __future__ import annotations
