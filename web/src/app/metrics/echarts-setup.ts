/**
 * The parts of ECharts the metrics charts use, and nothing else: loaded by
 * a dynamic import from the charts' component, so neither ECharts nor
 * zrender is in the main bundle.
 */
import { LineChart } from 'echarts/charts';
import { GridComponent, LegendComponent, TooltipComponent } from 'echarts/components';
import * as echarts from 'echarts/core';
import { CanvasRenderer } from 'echarts/renderers';

echarts.use([LineChart, GridComponent, LegendComponent, TooltipComponent, CanvasRenderer]);

export default echarts;
