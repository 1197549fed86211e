"""The admin API: operators act on a live proxy from a listener of their own.

:mod:`proxy.admin.settings` (``[admin]``), :mod:`proxy.admin.auth` (who may call),
:mod:`proxy.admin.actions` (one record per action), :mod:`proxy.admin.api` (routes).
"""
