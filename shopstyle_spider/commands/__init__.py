"""Project commands (``COMMANDS_MODULE``): Scrapy's own, adjusted where the project needs it."""
