"""The web app (``vtrack web``): pages for jobs and results, search, the JSON API."""
