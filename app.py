"""StemDeck entry point: page config, navigation, and the error frame around every page."""

from components.shell import run_app

run_app()
