using static TorchSharp.torch;

namespace Mae.MLNet.Interop;

/// <summary>The reference's <c>interpolate_pos_embed</c> (util/pos_embed.py): the patch-grid part of a position
/// table is resized bicubically (align_corners = false) to a new grid; the extra (cls) tokens are kept as they are.</summary>
internal static class PosEmbedInterpolation
{
    public static Tensor Interpolate(Tensor posEmbed, int newGrid, int extraTokens = 1)
    {
        if (posEmbed.dim() != 3 || posEmbed.shape[0] != 1)
            throw new ArgumentException($"Expected a position table [1, extra + grid², D]; got [{string.Join(", ", posEmbed.shape)}].", nameof(posEmbed));
        long d = posEmbed.shape[2];
        long patches = posEmbed.shape[1] - extraTokens;
        int oldGrid = (int)Math.Round(Math.Sqrt(patches));
        if (patches < 1 || oldGrid * oldGrid != patches)
            throw new ArgumentException($"The position table has {patches} patch rows, which is not a square grid.", nameof(posEmbed));
        if (newGrid < 1) throw new ArgumentOutOfRangeException(nameof(newGrid), newGrid, "The grid must be at least 1×1.");
        if (oldGrid == newGrid) return posEmbed.clone();
        using var scope = NewDisposeScope();
        var extra = posEmbed[.., ..extraTokens, ..];
        var grid = posEmbed[.., extraTokens.., ..].reshape(1, oldGrid, oldGrid, d).permute(0, 3, 1, 2).to(float32);
        var resized = nn.functional.interpolate(grid, new long[] { newGrid, newGrid }, mode: InterpolationMode.Bicubic, align_corners: false);
        var tokens = resized.permute(0, 2, 3, 1).flatten(1, 2).to(posEmbed.dtype);
        return cat(new[] { extra, tokens }, 1).MoveToOuterDisposeScope();
    }
}
