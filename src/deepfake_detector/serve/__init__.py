"""The web service: FastAPI app, upload handling and the page."""
