"""The project's spiders (one: ``shopstyle``)."""
