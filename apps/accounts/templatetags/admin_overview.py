from django import template

from apps.accounts import selectors

register = template.Library()


@register.simple_tag
def admin_overview() -> selectors.Overview:
    """The operator's overview shown at the top of the admin index."""
    return selectors.admin_overview()
