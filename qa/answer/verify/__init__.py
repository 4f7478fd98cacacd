"""Checks a generated answer against the evidence it cites. No HTTP, no model calls.

A model's answer is split into sentences, each with the evidence numbers it cites
(``[2][5]``: ``sentences``). A sentence is kept only when all of these hold
(``verifier`` combines them):

* it cites at least one evidence sentence, and every number it cites exists;
* every number in it (a year, a date, a count; Western or Arabic-Indic digits, or
  a number written out in English or Arabic) is written in a cited span (``numbers``);
* every name in an English sentence (a capitalized word) is in a cited span,
  matched across scripts by its consonants (``names``);
* it keeps the negations of its spans and adds none (``negation``); over a span in
  another language, where words cannot be compared, a claim without a negation of
  its own stays only when the span without its negated parts, or a cited span with
  no negation, is NEGATION_MARGIN closer to it in meaning than the negated parts
  are; nominal negation is not compared across languages (English writes it as
  "landlocked", "untreated");
* it is close in meaning to a cited span: the embedding model is multilingual, so
  an English sentence is compared with its Arabic span directly. A word-for-word
  quote needs no embedding, but only when it is one or more whole clauses of the
  span in a row, or the whole sentence, on word boundaries (normalized, punctuation
  aside; the first word may lose a glued و/ف and a clause its opening "and"/"but"/
  لكن; ``clauses``): a part of a clause is no quote, since "the minister resigned on
  Monday" is in "Officials denied reports that the minister resigned on Monday".

Anything else is removed and reported with the reason, never shown.
"""
