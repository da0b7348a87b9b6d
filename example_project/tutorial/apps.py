from __future__ import annotations

from django.apps import AppConfig


class TutorialConfig(AppConfig):
    name = "example_project.tutorial"
    verbose_name = "express-session tutorials"
