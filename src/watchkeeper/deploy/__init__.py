"""Deployments to hosts no platform manages: the agent and the host's software state.

document/deployments.py  what the document asks for
deploy/items.py          a job's host state as plain items (templates rendered)
deploy/engine.py         pyinfra converging one host, in a process of its own
deploy/wheelhouse.py     the agent's wheels, from this installation
deploy/rollout.py        which host to check or apply next (pure)
deploy/service.py        the manager's stage: runs, rollout, deploy:HOST, agent keys
worker/deploy.py         the deploy worker's side of a job
"""
