using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Mae.MLNet.Model;

/// <summary>The reference's <c>initialize_weights</c>: Linear xavier_uniform + zero bias, LayerNorm (1, 0),
/// patch-embedding conv weight xavier_uniform on its [D, C·p·p] view (like a Linear), tokens normal(std .02).
/// The conv bias keeps PyTorch's default init, as in the reference.</summary>
internal static class MaeInit
{
    public static void InitializeLikeReference(nn.Module root, PatchEmbed patchEmbed)
    {
        using var noGrad = no_grad();
        foreach (var (_, module) in root.named_modules())
        {
            switch (module)
            {
                case Linear linear:
                    nn.init.xavier_uniform_(linear.weight);
                    if (linear.bias is not null) nn.init.zeros_(linear.bias);
                    break;
                case LayerNorm layerNorm:
                    nn.init.ones_(layerNorm.weight);
                    nn.init.zeros_(layerNorm.bias);
                    break;
            }
        }
        var w = patchEmbed.proj.weight!;
        using (var view = w.view(w.shape[0], -1)) nn.init.xavier_uniform_(view);
        foreach (var (name, p) in root.named_parameters())
            if (name == "cls_token" || name == "mask_token") nn.init.normal_(p, 0, 0.02);
    }
}
