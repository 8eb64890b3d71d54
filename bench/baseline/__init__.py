"""The systems Sphere is measured against: the Channels tutorial chat (``tutorial``) and a bare
``websockets`` broadcast server (``bare``), the CPython ceiling."""
