from django import forms
from django.core.files.uploadedfile import UploadedFile

from apps.imports import services


class UploadForm(forms.Form):
    file = forms.FileField(
        label="Spotify export (ZIP)",
        widget=forms.ClearableFileInput(attrs={"accept": ".zip,application/zip"}),
    )

    def clean_file(self) -> UploadedFile:
        upload: UploadedFile = self.cleaned_data["file"]
        if upload.size is not None and upload.size > services.max_upload_bytes():
            raise forms.ValidationError(services.too_big_message())
        if not upload.size:
            raise forms.ValidationError("The file is empty.")
        return upload
