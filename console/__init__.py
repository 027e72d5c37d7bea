"""The Registered Manager's web console (``aupd web``): unblock decisions, recent blocks,
the mail quarantine and the audit log behind a login; what is blocked, the CA certificate,
the PAC file and the block page's forms without one."""
