using static TorchSharp.torch;

namespace Mae.MLNet.Model;

/// <summary>
/// The official <c>patchify</c>/<c>unpatchify</c> layout, shared by the ViT MAE (patches of <c>patch_size</c>) and FCMAE
/// (cells of the mask's patch size): an image [N, C, h·p, h·p] as rows [N, h², p²·C], each row a patch's pixels in
/// (row, column, channel) order. Callers check the shapes first.
/// </summary>
internal static class PatchLayout
{
    /// <summary>[N, C, h·p, h·p] → [N, h², p²·C].</summary>
    public static Tensor ToPatches(Tensor images, int channels, int grid, int patch)
    {
        long n = images.shape[0];
        using var x = images.reshape(n, channels, grid, patch, grid, patch);
        using var perm = x.permute(0, 2, 4, 3, 5, 1);   // nchpwq -> nhwpqc
        return perm.reshape(n, grid * grid, patch * patch * channels);
    }

    /// <summary>[N, h², p²·C] → [N, C, h·p, h·p], the inverse of <see cref="ToPatches"/>.</summary>
    public static Tensor ToImages(Tensor patches, int channels, int grid, int patch)
    {
        long n = patches.shape[0];
        using var x = patches.reshape(n, grid, grid, patch, patch, channels);
        using var perm = x.permute(0, 5, 1, 3, 2, 4);   // nhwpqc -> nchpwq
        return perm.reshape(n, channels, grid * patch, grid * patch);
    }
}
