"""kubemeter.watch: the watch stage. ``model`` is the ClusterModel kopf's watch events feed; ``relister`` keeps it
complete (the initial paged LIST, and a re-list after a watch gap)."""
