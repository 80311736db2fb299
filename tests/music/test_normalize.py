from apps.music.normalize import is_local_uri, local_track_uri, normalize_name


def test_names_normalise_case_accents_and_spacing():
    assert normalize_name("  Beyoncé   Knowles ") == "beyonce knowles"
    assert normalize_name("SIGUR RÓS") == normalize_name("sigur ros")
    assert normalize_name(None) == ""


def test_local_ids_are_deterministic_and_ignore_case_and_accents():
    uri = local_track_uri("Beyoncé", "Halo", "I Am... Sasha Fierce")
    assert uri == local_track_uri("beyonce", "HALO", "i am... sasha fierce")
    assert uri != local_track_uri("Beyoncé", "Halo", None)
    assert is_local_uri(uri) and len(uri) == len("local:") + 40
    assert not is_local_uri("spotify:track:4uLU6hMCjMI75M1A2tKUQC")


def test_ascii_names_skip_decomposition_with_the_same_keys():
    import unicodedata

    ascii_text = "".join(map(chr, range(128)))
    assert unicodedata.normalize("NFKD", ascii_text) == ascii_text
    assert normalize_name("  Song 13\tof  51 (LIVE) ") == "song 13 of 51 (live)"
    assert normalize_name("Beyoncé  Knowles") == "beyonce knowles"  # not ASCII: decomposed
