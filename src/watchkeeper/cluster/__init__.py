"""Active/standby managers on one PostgreSQL database: election, fencing, cluster status.

lease.py       pure: the lease's settings and what a heartbeat's outcome decides
election.py    the one dedicated connection that holds the advisory lock and the term
fence.py       the leader's fence: every leader-only write and job frame checks it
repository.py  the cluster's rows: the term, its history, every node's heartbeat
"""
