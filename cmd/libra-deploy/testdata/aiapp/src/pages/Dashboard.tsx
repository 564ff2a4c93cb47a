import { useQuery } from '@tanstack/react-query'
import { format, subDays } from 'date-fns'
import { Activity, CreditCard, DollarSign, Users } from 'lucide-react'
import { Area, AreaChart, Bar, BarChart, CartesianGrid, Pie, PieChart, ResponsiveContainer, Tooltip, XAxis, YAxis } from 'recharts'
import * as Progress from '@radix-ui/react-progress'
import * as Avatar from '@radix-ui/react-avatar'
import * as ScrollArea from '@radix-ui/react-scroll-area'

function fetchSales() {
  return Promise.resolve(Array.from({ length: 30 }, (_, i) => ({
    day: format(subDays(new Date(), 30 - i), 'MMM d'),
    revenue: 1000 + ((i * 7919) % 500),
    orders: 20 + ((i * 31) % 17),
  })))
}

const cards = [
  { title: 'Revenue', icon: DollarSign, value: '$45,231' },
  { title: 'Customers', icon: Users, value: '2,350' },
  { title: 'Sales', icon: CreditCard, value: '12,234' },
  { title: 'Active', icon: Activity, value: '573' },
]

export default function Dashboard() {
  const { data = [] } = useQuery({ queryKey: ['sales'], queryFn: fetchSales })
  return (
    <main className="grid gap-4 p-4">
      <div className="grid grid-cols-4 gap-4">
        {cards.map(({ title, icon: Icon, value }) => (
          <div key={title} className="rounded-lg border p-4">
            <Icon className="h-4 w-4" /> {title}: <strong>{value}</strong>
          </div>
        ))}
      </div>
      <ResponsiveContainer width="100%" height={240}>
        <AreaChart data={data}><CartesianGrid /><XAxis dataKey="day" /><YAxis /><Tooltip /><Area dataKey="revenue" /></AreaChart>
      </ResponsiveContainer>
      <ResponsiveContainer width="100%" height={240}>
        <BarChart data={data}><XAxis dataKey="day" /><Bar dataKey="orders" /></BarChart>
      </ResponsiveContainer>
      <PieChart width={200} height={200}><Pie data={data.slice(0, 5)} dataKey="orders" /></PieChart>
      <Progress.Root value={66}><Progress.Indicator style={{ width: '66%' }} /></Progress.Root>
      <ScrollArea.Root className="h-32"><ScrollArea.Viewport>
        {data.map((d) => (
          <div key={d.day}><Avatar.Root><Avatar.Fallback>{d.day[0]}</Avatar.Fallback></Avatar.Root>{d.day}</div>
        ))}
      </ScrollArea.Viewport><ScrollArea.Scrollbar orientation="vertical"><ScrollArea.Thumb /></ScrollArea.Scrollbar></ScrollArea.Root>
    </main>
  )
}
