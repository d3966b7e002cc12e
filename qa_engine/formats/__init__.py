"""Files in and out: SQuAD / JSON Lines question files, answer records, the KorQuAD metric."""
