"""Per-frame tracking: MediaPipe landmarks, face acquisition, the tracker that orchestrates the fit, filters."""
