using SkiaSharp;

namespace Mae.MLNet.Quickstart;

/// <summary>
/// The pre-training loss curve as a PNG, drawn with SkiaSharp 2.88.9 directly: every step's loss (light) and each
/// epoch's mean (dark, at the epoch's last step), with axes and ticks.
/// </summary>
/// <remarks>
/// Why not ScottPlot: ScottPlot 5 (5.1.59, the version served here) depends on SkiaSharp 3.119, which NuGet then
/// resolves for the whole program. Microsoft.ML.ImageAnalytics 5.0.1 is built against SkiaSharp 2.88 and calls
/// <c>SKBitmap.GetPixelSpan()</c>, which SkiaSharp 3 no longer has: <c>ExtractPixels</c> over loaded images fails at
/// run time with <c>MissingMethodException</c> (tried). One SkiaSharp (2.88.9, the library's) serves both.
/// </remarks>
public static class LossChart
{
    public static void SavePng(string path, IReadOnlyList<float> stepLosses, IReadOnlyList<double> epochLosses, string title,
        int width = 900, int height = 500)
    {
        if (stepLosses.Count == 0) throw new ArgumentException("There are no losses to draw.", nameof(stepLosses));
        const float left = 80, right = 24, top = 48, bottom = 64;
        float plotW = width - left - right, plotH = height - top - bottom;

        double yMin = Math.Min(stepLosses.Min(), epochLosses.DefaultIfEmpty(double.MaxValue).Min());
        double yMax = Math.Max(stepLosses.Max(), epochLosses.DefaultIfEmpty(double.MinValue).Max());
        var yTicks = NiceTicks(yMin, yMax, 6);
        yMin = Math.Min(yMin, yTicks[0]);
        yMax = Math.Max(yMax, yTicks[^1]);
        if (yMax <= yMin) yMax = yMin + 1;
        int steps = stepLosses.Count;
        var xTicks = NiceTicks(0, steps, 8).Where(t => t <= steps).ToArray();

        float X(double step) => left + (float)(step / Math.Max(1, steps) * plotW);
        float Y(double loss) => top + (float)((yMax - loss) / (yMax - yMin) * plotH);

        using var bitmap = new SKBitmap(width, height);
        using var canvas = new SKCanvas(bitmap);
        canvas.Clear(SKColors.White);
        var typeface = SKFontManager.Default.MatchFamily("DejaVu Sans") ?? SKTypeface.Default;
        using var text = new SKPaint { Color = new SKColor(40, 40, 40), IsAntialias = true, TextSize = 14, Typeface = typeface };
        using var grid = new SKPaint { Color = new SKColor(225, 225, 225), StrokeWidth = 1, IsAntialias = false };
        using var axis = new SKPaint { Color = new SKColor(80, 80, 80), StrokeWidth = 1.5f, IsAntialias = true, Style = SKPaintStyle.Stroke };

        foreach (var t in yTicks)
        {
            float y = Y(t);
            canvas.DrawLine(left, y, left + plotW, y, grid);
            string label = t.ToString(Math.Abs(yTicks[^1] - yTicks[0]) < 0.1 ? "0.000" : "0.00");
            canvas.DrawText(label, left - 8 - text.MeasureText(label), y + 5, text);
        }
        foreach (var t in xTicks)
        {
            float x = X(t);
            canvas.DrawLine(x, top, x, top + plotH, grid);
            string label = t.ToString("0");
            canvas.DrawText(label, x - text.MeasureText(label) / 2, top + plotH + 20, text);
        }
        canvas.DrawRect(left, top, plotW, plotH, axis);

        using (var stepLine = new SKPaint { Color = new SKColor(120, 160, 220), StrokeWidth = 1, IsAntialias = true, Style = SKPaintStyle.Stroke })
        using (var pathStep = new SKPath())
        {
            pathStep.MoveTo(X(1), Y(stepLosses[0]));
            for (int i = 1; i < steps; i++) pathStep.LineTo(X(i + 1), Y(stepLosses[i]));
            canvas.DrawPath(pathStep, stepLine);
        }
        if (epochLosses.Count > 0)
        {
            double stepsPerEpoch = (double)steps / epochLosses.Count;
            using var epochLine = new SKPaint { Color = new SKColor(20, 60, 140), StrokeWidth = 2.5f, IsAntialias = true, Style = SKPaintStyle.Stroke };
            using var dot = new SKPaint { Color = new SKColor(20, 60, 140), IsAntialias = true, Style = SKPaintStyle.Fill };
            using var pathEpoch = new SKPath();
            for (int e = 0; e < epochLosses.Count; e++)
            {
                float x = X((e + 1) * stepsPerEpoch), y = Y(epochLosses[e]);
                if (e == 0) pathEpoch.MoveTo(x, y); else pathEpoch.LineTo(x, y);
                canvas.DrawCircle(x, y, 3.5f, dot);
            }
            canvas.DrawPath(pathEpoch, epochLine);
        }

        using var titlePaint = new SKPaint { Color = SKColors.Black, IsAntialias = true, TextSize = 17, Typeface = typeface, FakeBoldText = true };
        canvas.DrawText(title, left, top - 18, titlePaint);
        string xLabel = "training step";
        canvas.DrawText(xLabel, left + plotW / 2 - text.MeasureText(xLabel) / 2, height - 18, text);
        canvas.Save();
        canvas.RotateDegrees(-90);
        string yLabel = "reconstruction loss (masked patches)";
        canvas.DrawText(yLabel, -(top + plotH / 2) - text.MeasureText(yLabel) / 2, 22, text);
        canvas.Restore();
        // Legend.
        float lx = left + plotW - 230, ly = top + 18;
        using (var l1 = new SKPaint { Color = new SKColor(120, 160, 220), StrokeWidth = 2, IsAntialias = true })
            canvas.DrawLine(lx, ly - 5, lx + 24, ly - 5, l1);
        canvas.DrawText("loss of each step", lx + 30, ly, text);
        using (var l2 = new SKPaint { Color = new SKColor(20, 60, 140), StrokeWidth = 3, IsAntialias = true })
            canvas.DrawLine(lx, ly + 15, lx + 24, ly + 15, l2);
        canvas.DrawText("mean of each epoch", lx + 30, ly + 20, text);

        using var image = SKImage.FromBitmap(bitmap);
        using var data = image.Encode(SKEncodedImageFormat.Png, 100) ?? throw new InvalidOperationException("SkiaSharp could not encode the PNG.");
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(path))!);
        using var file = File.Create(path);
        data.SaveTo(file);
    }

    /// <summary>Round tick values (1, 2, 2.5 or 5 × 10^k apart) covering [min, max].</summary>
    static double[] NiceTicks(double min, double max, int count)
    {
        if (!(max > min)) max = min + 1;
        double raw = (max - min) / Math.Max(1, count - 1);
        double mag = Math.Pow(10, Math.Floor(Math.Log10(raw)));
        double step = new[] { 1, 2, 2.5, 5, 10 }.Select(m => m * mag).First(s => s >= raw);
        double start = Math.Floor(min / step) * step, end = Math.Ceiling(max / step) * step;
        var ticks = new List<double>();
        for (double t = start; t <= end + step / 2; t += step) ticks.Add(Math.Round(t, 10));
        return ticks.ToArray();
    }
}
