namespace Mae.MLNet.Model;

/// <summary>
/// Fixed 2-D sine-cosine position embeddings, exactly as <c>util/pos_embed.py</c> of the official code:
/// the first half of the width encodes the grid's first meshgrid coordinate (the column index, since
/// <c>np.meshgrid(grid_w, grid_h)</c> puts w first), the second half the row index; each half is
/// [sin(pos·ω), cos(pos·ω)] with ω_k = 1 / 10000^(k / (D/4)). Computed in double, returned as float.
/// </summary>
internal static class PosEmbed
{
    /// <summary>Returns a row-major [(cls ? 1 : 0) + grid², embedDim] table; the cls row is zeros.</summary>
    public static float[] SinCos2D(int embedDim, int gridSize, bool clsToken)
    {
        if (embedDim % 4 != 0) throw new ArgumentException($"embedDim must be a multiple of 4: got {embedDim}.", nameof(embedDim));
        int offset = clsToken ? 1 : 0;
        var table = new float[(offset + gridSize * gridSize) * embedDim];
        int half = embedDim / 2, quarter = embedDim / 4;
        for (int h = 0; h < gridSize; h++)
            for (int w = 0; w < gridSize; w++)
            {
                int row = (offset + h * gridSize + w) * embedDim;
                Fill1D(table, row, quarter, w);          // emb_h in the reference, fed grid[0] = column index
                Fill1D(table, row + half, quarter, h);   // emb_w, fed grid[1] = row index
            }
        return table;
    }

    static void Fill1D(float[] table, int start, int quarter, int position)
    {
        for (int k = 0; k < quarter; k++)
        {
            double omega = 1.0 / Math.Pow(10000.0, k / (double)quarter);
            double angle = position * omega;
            table[start + k] = (float)Math.Sin(angle);
            table[start + quarter + k] = (float)Math.Cos(angle);
        }
    }
}
