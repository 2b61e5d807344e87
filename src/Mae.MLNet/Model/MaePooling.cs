namespace Mae.MLNet.Model;

/// <summary>How an image's tokens become one feature vector (per block; see <see cref="MaeEncoder.ExtractFeatures"/>).</summary>
public enum MaePooling
{
    /// <summary>The cls token after the encoder's final norm: D values.</summary>
    Cls,
    /// <summary>The mean of the patch tokens (cls excluded) after the encoder's final norm: D values.</summary>
    Mean,
    /// <summary>The mean of the patch tokens of each quadrant of the patch grid (top-left, top-right, bottom-left,
    /// bottom-right; the cells of an adaptive 2 × 2 average pooling, which overlap by a row and a column when the grid's
    /// side is odd), after the final norm, concatenated: 4 · D values. A linear probe then sees where in the image a
    /// pattern is, which the mean loses (docs/results.md, "Where in the image").</summary>
    Quadrants,
}
