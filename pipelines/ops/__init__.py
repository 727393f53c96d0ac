"""Operations around the loop: serving exports, drift checks and the review queue."""
