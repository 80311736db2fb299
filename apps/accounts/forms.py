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


class WindowForm(forms.Form):
    """The analytics window: a preset number of days (0 = all time) or custom local dates."""

    days = forms.TypedChoiceField(
        choices=[(30, "30 days"), (90, "90 days"), (365, "365 days"), (0, "All time")],
        coerce=int,
        required=False,
        empty_value=90,  # type: ignore[arg-type]
    )
    start = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def clean(self) -> dict[str, object]:
        data = super().clean() or {}
        start, end = data.get("start"), data.get("end")
        if start and end and start > end:
            raise forms.ValidationError("The start date is after the end date.")
        return data


class TokenForm(forms.Form):
    name = forms.CharField(
        max_length=100,
        label="Token name",
        help_text="Say which assistant will use it, e.g. “ChatGPT” or “Claude Code on my laptop”.",
    )
