ALTER TABLE users DROP COLUMN show_on_leaderboard;
