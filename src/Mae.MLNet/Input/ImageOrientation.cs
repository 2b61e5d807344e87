using SkiaSharp;

namespace Mae.MLNet.Input;

/// <summary>The EXIF orientation tag as a pixel mapping: oriented pixel (x′, y′) = raw pixel
/// (ax·x′ + bx·y′ + cx, ay·x′ + by·y′ + cy); the same transposes as PIL's <c>ImageOps.exif_transpose</c>.</summary>
internal static unsafe class ImageOrientation
{
    /// <summary>True when the orientation swaps width and height (a quarter turn or a transpose).</summary>
    public static bool SwapsAxes(SKEncodedOrigin origin)
        => origin is SKEncodedOrigin.LeftTop or SKEncodedOrigin.RightTop or SKEncodedOrigin.RightBottom or SKEncodedOrigin.LeftBottom;

    /// <summary>Writes the upright image of the raw <paramref name="width"/> × <paramref name="height"/> pixels to
    /// <paramref name="dst"/> (tightly packed).</summary>
    public static void Apply(SKEncodedOrigin origin, byte* src, int width, int height, int pixelBytes, byte* dst)
    {
        int ow = SwapsAxes(origin) ? height : width, oh = SwapsAxes(origin) ? width : height;
        // raw x = ax·x′ + bx·y′ + cx ; raw y = ay·x′ + by·y′ + cy
        (int ax, int bx, int cx, int ay, int by, int cy) = origin switch
        {
            SKEncodedOrigin.TopRight => (-1, 0, width - 1, 0, 1, 0),          // mirror left-right
            SKEncodedOrigin.BottomRight => (-1, 0, width - 1, 0, -1, height - 1), // rotate 180°
            SKEncodedOrigin.BottomLeft => (1, 0, 0, 0, -1, height - 1),        // mirror top-bottom
            SKEncodedOrigin.LeftTop => (0, 1, 0, 1, 0, 0),                     // transpose
            SKEncodedOrigin.RightTop => (0, 1, 0, -1, 0, height - 1),          // rotate 90° clockwise
            SKEncodedOrigin.RightBottom => (0, -1, width - 1, -1, 0, height - 1), // transverse
            SKEncodedOrigin.LeftBottom => (0, -1, width - 1, 1, 0, 0),         // rotate 90° counter-clockwise
            _ => (1, 0, 0, 0, 1, 0),
        };
        for (int y = 0; y < oh; y++)
        {
            byte* o = dst + (long)y * ow * pixelBytes;
            for (int x = 0; x < ow; x++, o += pixelBytes)
            {
                int rx = ax * x + bx * y + cx, ry = ay * x + by * y + cy;
                byte* s = src + ((long)ry * width + rx) * pixelBytes;
                for (int c = 0; c < pixelBytes; c++) o[c] = s[c];
            }
        }
    }
}
