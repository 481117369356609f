-- Residents may choose not to be named on leaderboards (评比); they are then shown masked.
ALTER TABLE users ADD COLUMN show_on_leaderboard BOOLEAN NOT NULL DEFAULT 1;
