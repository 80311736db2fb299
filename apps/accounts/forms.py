import zoneinfo

from django import forms

from apps.accounts.models import User


def timezone_choices() -> list[tuple[str, str]]:
    zones = sorted(z for z in zoneinfo.available_timezones() if "/" in z or z == "UTC")
    return [(zone, zone.replace("_", " ")) for zone in zones]


class TimezoneForm(forms.ModelForm):
    timezone = forms.ChoiceField(choices=timezone_choices, label="Time zone")

    class Meta:
        model = User
        fields = ["timezone"]


class DeleteDataForm(forms.Form):
    """Deleting everything is confirmed by typing one's username."""

    confirm = forms.CharField(label="Type your username to confirm", max_length=150)

    def __init__(self, *args: object, user: User, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.user = user

    def clean_confirm(self) -> str:
        value: str = self.cleaned_data["confirm"].strip()
        if value != self.user.username:
            raise forms.ValidationError("That is not your username; nothing was deleted.")
        return value
